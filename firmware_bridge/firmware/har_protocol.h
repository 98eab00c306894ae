/*
 * har wire protocol v1: line encoder for devices (see firmware_bridge/PROTOCOL.md).
 *
 * Plain C99, no printf, no floats, no heap: fits an ATmega328P and builds with any host
 * compiler. The same two files are used by the Arduino sketch (har_stream/src/ holds a
 * byte-identical copy, checked by tests/test_firmware.py), the bare-metal AVR build (avr/) and
 * the host test harness (host_vectors.c).
 */
#ifndef HAR_PROTOCOL_H
#define HAR_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAR_PROTOCOL_VERSION 1
/* Longest line a device may send, including the trailing '\n'. */
#define HAR_MAX_LINE 80
/* Longest sample line: "4294967295,-32768,-32768,-32768*HH\n" = 35 bytes (+1 for a NUL). */
#define HAR_SAMPLE_MAX 36
/* Device names: 1..32 of [A-Za-z0-9_.-] (and the whole header line <= HAR_MAX_LINE). */
#define HAR_DEV_MAX 32

/* CRC-8: polynomial 0x07, init 0x00, no reflection, no final xor (CRC-8/SMBUS).
 * har_crc8("123456789", 9) == 0xF4. */
uint8_t har_crc8(const uint8_t *data, size_t len);

/* "#HAR,v=1,rate=<rate_hz>,range=<range_g>,units=mg,axes=xyz,dev=<dev>*HH\n" into buf,
 * NUL-terminated. Returns the line length (without the NUL), or 0 (buf[0] = NUL when cap > 0)
 * if rate_hz or range_g is 0, dev is not a valid name, or the line does not fit in cap bytes. */
size_t har_encode_header(char *buf, size_t cap, uint16_t rate_hz, uint8_t range_g, const char *dev);

/* "<seq>,<x>,<y>,<z>*HH\n" into buf, NUL-terminated. Returns the line length (without the NUL),
 * or 0 if it does not fit (cap >= HAR_SAMPLE_MAX always fits). */
size_t har_encode_sample(char *buf, size_t cap, uint32_t seq, int16_t x, int16_t y, int16_t z);

#ifdef __cplusplus
}
#endif

#endif /* HAR_PROTOCOL_H */
