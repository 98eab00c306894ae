from har.cli import main

main()
