/* Minimal stand-in for the Arduino core, only for compile-checking har_stream.ino in CI
 * (Debian's arduino-core-avr does not build with Debian's avr-gcc). Declarations only: the
 * sketch is compiled (-c), never linked against this. Not for real builds: use the Arduino IDE. */
#ifndef HAR_CI_ARDUINO_STUB_H
#define HAR_CI_ARDUINO_STUB_H
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define PI 3.1415926535897932384626433832795
#define HEX 16
#define noInterrupts() cli()
#define interrupts() sei()

class __FlashStringHelper;
#define F(s) (reinterpret_cast<const __FlashStringHelper *>(PSTR(s)))

class HardwareSerial {
  public:
    void begin(unsigned long baud);
    size_t write(const uint8_t *buf, size_t n);
    size_t print(const __FlashStringHelper *s);
    size_t print(int v, int base = 10);
};
extern HardwareSerial Serial;

void setup(void);
void loop(void);
#endif
