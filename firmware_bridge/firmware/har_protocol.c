/* har wire protocol v1 encoder (see har_protocol.h and firmware_bridge/PROTOCOL.md). */
#include "har_protocol.h"

static const char HEX[16] = {'0', '1', '2', '3', '4', '5', '6', '7',
                             '8', '9', 'A', 'B', 'C', 'D', 'E', 'F'};

/* Powers of ten for division-free decimal conversion (small and fast on an 8-bit CPU). */
static const uint32_t POW10[9] = {1000000000UL, 100000000UL, 10000000UL, 1000000UL, 100000UL,
                                  10000UL,      1000UL,      100UL,      10UL};

uint8_t har_crc8(const uint8_t *data, size_t len)
{
    uint8_t crc = 0;
    while (len--) {
        crc ^= *data++;
        for (uint8_t i = 0; i < 8; i++)
            crc = (crc & 0x80) ? (uint8_t)((crc << 1) ^ 0x07) : (uint8_t)(crc << 1);
    }
    return crc;
}

/* Appends the decimal digits of v at p (no NUL); returns the new end. Needs 10 bytes. */
static char *put_u32(char *p, uint32_t v)
{
    uint8_t started = 0;
    for (uint8_t i = 0; i < 9; i++) {
        char d = '0';
        while (v >= POW10[i]) {
            v -= POW10[i];
            d++;
        }
        if (started || d != '0') {
            *p++ = d;
            started = 1;
        }
    }
    *p++ = (char)('0' + (uint8_t)v);
    return p;
}

static char *put_i16(char *p, int16_t v)
{
    uint16_t mag = (uint16_t)v;
    if (v < 0) {
        *p++ = '-';
        mag = (uint16_t)(0U - mag); /* -32768 -> 32768 without overflow */
    }
    return put_u32(p, mag);
}

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

/* Appends "*HH\n" and a NUL for the body buf[0..p); returns the line length. */
static size_t finish(char *buf, char *p)
{
    uint8_t c = har_crc8((const uint8_t *)buf, (size_t)(p - buf));
    *p++ = '*';
    *p++ = HEX[c >> 4];
    *p++ = HEX[c & 15];
    *p++ = '\n';
    *p = '\0';
    return (size_t)(p - buf);
}

static uint8_t valid_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

size_t har_encode_header(char *buf, size_t cap, uint16_t rate_hz, uint8_t range_g, const char *dev)
{
    /* Worst case before dev: "#HAR,v=1,rate=65535,range=255,units=mg,axes=xyz,dev=" = 52 bytes. */
    char tmp[HAR_MAX_LINE + 1];
    size_t n = 0;
    if (cap)
        buf[0] = '\0';
    if (rate_hz == 0 || range_g == 0 || dev == 0)
        return 0;
    while (dev[n]) {
        if (n >= HAR_DEV_MAX || !valid_name_char(dev[n]))
            return 0;
        n++;
    }
    if (n == 0)
        return 0;
    char *p = put_str(tmp, "#HAR,v=1,rate=");
    p = put_u32(p, rate_hz);
    p = put_str(p, ",range=");
    p = put_u32(p, range_g);
    p = put_str(p, ",units=mg,axes=xyz,dev=");
    if ((size_t)(p - tmp) + n + 4 > HAR_MAX_LINE)
        return 0;
    p = put_str(p, dev);
    size_t len = finish(tmp, p);
    if (len + 1 > cap)
        return 0;
    for (size_t i = 0; i <= len; i++)
        buf[i] = tmp[i];
    return len;
}

size_t har_encode_sample(char *buf, size_t cap, uint32_t seq, int16_t x, int16_t y, int16_t z)
{
    char tmp[HAR_SAMPLE_MAX];
    char *p = put_u32(tmp, seq);
    *p++ = ',';
    p = put_i16(p, x);
    *p++ = ',';
    p = put_i16(p, y);
    *p++ = ',';
    p = put_i16(p, z);
    size_t len = finish(tmp, p);
    if (cap)
        buf[0] = '\0';
    if (len + 1 > cap)
        return 0;
    for (size_t i = 0; i <= len; i++)
        buf[i] = tmp[i];
    return len;
}
