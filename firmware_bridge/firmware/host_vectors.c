/*
 * Host test harness for har_protocol.c (built with the host gcc by tests/test_firmware.py).
 *
 * Reads commands from stdin, one per line, and writes one protocol line per command to stdout:
 *   H <rate_hz> <range_g> <cap> <dev>     -> har_encode_header(...); dev = rest of the line
 *   S <seq> <x> <y> <z> [cap]             -> har_encode_sample(...)
 *   C <text>                              -> "!crc=HH" (har_crc8 of <text>)
 * A command the encoder refuses (returns 0) prints "!ERR". Numbers are parsed with the C types of
 * the API (uint16/uint8/uint32/int16), so out-of-type values are not accepted here.
 *
 *   gcc -std=c99 -Wall -Wextra -Werror -o host_vectors host_vectors.c har_protocol.c
 *   printf 'S 0 0 0 1000\nH 50 4 81 uno-mpu6050\n' | ./host_vectors
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "har_protocol.h"

static int emit(size_t n, const char *buf)
{
    if (n == 0 || n != strlen(buf))
        return fputs("!ERR\n", stdout) < 0;
    return fwrite(buf, 1, n, stdout) != n;
}

int main(void)
{
    char cmd[256];
    char out[HAR_MAX_LINE + 8];
    while (fgets(cmd, sizeof cmd, stdin)) {
        unsigned long rate, range, seq;
        long x, y, z;
        unsigned long cap = sizeof out;
        int dev_at = 0;
        cmd[strcspn(cmd, "\r\n")] = '\0';
        if (cmd[0] == 'H' && sscanf(cmd + 1, "%lu %lu %lu %n", &rate, &range, &cap, &dev_at) == 3 && dev_at > 0) {
            if (rate > 65535 || range > 255 || cap > sizeof out) {
                fputs("!ERR\n", stdout);
                continue;
            }
            if (emit(har_encode_header(out, cap, (uint16_t)rate, (uint8_t)range, cmd + 1 + dev_at), out))
                return 1;
        } else if (cmd[0] == 'S' && sscanf(cmd + 1, "%lu %ld %ld %ld %lu", &seq, &x, &y, &z, &cap) >= 4) {
            if (seq > 0xFFFFFFFFUL || x < -32768 || x > 32767 || y < -32768 || y > 32767 || z < -32768 ||
                z > 32767 || cap > sizeof out) {
                fputs("!ERR\n", stdout);
                continue;
            }
            if (emit(har_encode_sample(out, cap, (uint32_t)seq, (int16_t)x, (int16_t)y, (int16_t)z), out))
                return 1;
        } else if (cmd[0] == 'C' && cmd[1] == ' ') {
            printf("!crc=%02X\n", har_crc8((const uint8_t *)cmd + 2, strlen(cmd + 2)));
        } else {
            fputs("!ERR\n", stdout);
        }
    }
    return fflush(stdout) != 0;
}
