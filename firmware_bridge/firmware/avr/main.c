/*
 * har_stream, bare-metal build: ATmega328P (Arduino Uno/Nano, 16 MHz) + MPU-6050 (GY-521) on I2C.
 *
 * Streams har wire protocol v1 (firmware_bridge/PROTOCOL.md) on the UART: a header at boot and
 * every HAR_HEADER_PERIOD_S seconds, then one sample line per Timer1 compare-match tick
 * (HAR_RATE_HZ, default 50 Hz), accelerometer at +-4 g converted to milli-g.
 *
 * Same behaviour as the Arduino sketch (../har_stream/har_stream.ino) and the same protocol unit
 * (../har_protocol.c), but register level (UART0, TWI, Timer1): no Arduino core, so it builds
 * with Debian's avr-gcc 5.4 + avr-libc, in CI and in simavr.
 *
 * If the MPU-6050 does not answer WHO_AM_I at boot (no sensor wired, or running in simavr) the
 * firmware logs "!..." and streams a synthetic signal instead (device name "uno-synthetic"), so
 * the protocol path can be exercised without hardware. -DHAR_SYNTHETIC=1 forces that mode.
 *
 * Sample timing: Timer1 ISR only counts ticks; the main loop sleeps until a tick, reads the
 * sensor, and sends the line with seq = tick number. If the loop ever falls behind (UART too slow
 * for the rate) it skips to the newest tick, so the host sees a seq gap (honest loss accounting)
 * instead of silently time-shifted data.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <avr/sleep.h>
#include <stdint.h>
#include <util/atomic.h>

#include "../har_protocol.h"

#ifndef F_CPU
#error "define F_CPU (e.g. -DF_CPU=16000000UL)"
#endif
#ifndef HAR_RATE_HZ
#define HAR_RATE_HZ 50
#endif
#ifndef HAR_BAUD
#define HAR_BAUD 115200UL
#endif
#ifndef HAR_HEADER_PERIOD_S
#define HAR_HEADER_PERIOD_S 2
#endif
#ifndef HAR_DEVICE
#define HAR_DEVICE "uno-mpu6050"
#endif
#ifndef HAR_SYNTHETIC
#define HAR_SYNTHETIC 0
#endif
#define HAR_RANGE_G 4

#if HAR_RATE_HZ < 1 || HAR_RATE_HZ > 1000
#error "HAR_RATE_HZ must be 1..1000"
#endif
#if HAR_HEADER_PERIOD_S < 1 || HAR_HEADER_PERIOD_S > 5
#error "the protocol needs a header at least every 5 s"
#endif

/* ---- UART0: 8N1, double speed (115200 @ 16 MHz: UBRR 16, +2.1 %, as the Arduino core does) ---- */
#define UBRR_VALUE ((F_CPU + 4UL * HAR_BAUD) / (8UL * HAR_BAUD) - 1UL)

static void uart_init(void)
{
    UBRR0H = (uint8_t)(UBRR_VALUE >> 8);
    UBRR0L = (uint8_t)UBRR_VALUE;
    UCSR0A = _BV(U2X0);
    UCSR0B = _BV(TXEN0);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8 data bits, no parity, 1 stop bit */
}

static void uart_write(const char *s, uint8_t n)
{
    while (n--) {
        loop_until_bit_is_set(UCSR0A, UDRE0);
        UDR0 = (uint8_t)*s++;
    }
}

static void uart_puts_P(const char *s) /* a flash string, e.g. PSTR("!boot\n") */
{
    char c;
    while ((c = (char)pgm_read_byte(s++)) != 0) {
        loop_until_bit_is_set(UCSR0A, UDRE0);
        UDR0 = (uint8_t)c;
    }
}

/* ---- TWI (I2C) master, 400 kHz, every wait bounded so a missing sensor cannot hang us ---- */
#define MPU_ADDR 0x68 /* AD0 to GND */
#define TWI_SPIN 4000U /* ~ 1 ms at 16 MHz per wait */

static uint8_t twi_wait(void)
{
    for (uint16_t i = 0; i < TWI_SPIN; i++)
        if (TWCR & _BV(TWINT))
            return 1;
    return 0;
}

static void twi_stop(void)
{
    TWCR = _BV(TWINT) | _BV(TWEN) | _BV(TWSTO);
}

/* START (or repeated START) + SLA; returns 1 if the slave ACKed. */
static uint8_t twi_start(uint8_t sla)
{
    TWCR = _BV(TWINT) | _BV(TWSTA) | _BV(TWEN);
    if (!twi_wait())
        return 0;
    uint8_t st = TWSR & 0xF8;
    if (st != 0x08 && st != 0x10) /* START / repeated START sent */
        return 0;
    TWDR = sla;
    TWCR = _BV(TWINT) | _BV(TWEN);
    if (!twi_wait())
        return 0;
    st = TWSR & 0xF8;
    return st == 0x18 || st == 0x40; /* SLA+W ACK / SLA+R ACK */
}

static uint8_t twi_write(uint8_t b)
{
    TWDR = b;
    TWCR = _BV(TWINT) | _BV(TWEN);
    return twi_wait() && (TWSR & 0xF8) == 0x28;
}

static uint8_t mpu_write(uint8_t reg, uint8_t val)
{
    uint8_t ok = twi_start((uint8_t)(MPU_ADDR << 1)) && twi_write(reg) && twi_write(val);
    twi_stop();
    return ok;
}

static uint8_t mpu_read(uint8_t reg, uint8_t *dst, uint8_t n)
{
    uint8_t ok = twi_start((uint8_t)(MPU_ADDR << 1)) && twi_write(reg) && twi_start((uint8_t)((MPU_ADDR << 1) | 1));
    while (ok && n) {
        n--;
        TWCR = _BV(TWINT) | _BV(TWEN) | (n ? _BV(TWEA) : 0); /* ACK all but the last byte */
        ok = twi_wait();
        if (ok)
            *dst++ = TWDR;
    }
    twi_stop();
    return ok;
}

/* MPU-6050 registers */
#define MPU_SMPLRT_DIV 0x19
#define MPU_CONFIG 0x1A
#define MPU_ACCEL_CONFIG 0x1C
#define MPU_ACCEL_XOUT_H 0x3B
#define MPU_PWR_MGMT_1 0x6B
#define MPU_WHO_AM_I 0x75

static uint8_t mpu_init(uint8_t *who)
{
    TWSR = 0;                                  /* prescaler 1 */
    TWBR = (uint8_t)((F_CPU / 400000UL - 16) / 2); /* 400 kHz */
    TWCR = _BV(TWEN);
    *who = 0;
    if (!mpu_read(MPU_WHO_AM_I, who, 1))
        return 0;
    /* 0x68 MPU-6050; 0x70/0x71/0x73 MPU-6500/9250/9255 and 0x72/0x98 clones share these registers */
    if (*who != 0x68 && *who != 0x70 && *who != 0x71 && *who != 0x72 && *who != 0x73 && *who != 0x98)
        return 0;
    return mpu_write(MPU_PWR_MGMT_1, 0x01)    /* wake, clock = gyro X PLL */
           && mpu_write(MPU_CONFIG, 0x03)     /* DLPF ~44 Hz accel bandwidth */
           && mpu_write(MPU_SMPLRT_DIV, 0x00) /* registers refresh at 1 kHz */
           && mpu_write(MPU_ACCEL_CONFIG, 0x08); /* AFS_SEL=1: +-4 g, 8192 LSB/g */
}

/* raw counts at +-4 g (8192 LSB/g) -> milli-g, rounded: raw * 1000 / 8192 = raw * 125 / 1024 */
static int16_t raw_to_mg(uint8_t hi, uint8_t lo)
{
    int16_t raw = (int16_t)(((uint16_t)hi << 8) | lo);
    return (int16_t)(((int32_t)raw * 125 + 512) >> 10);
}

static uint8_t mpu_read_mg(int16_t *x, int16_t *y, int16_t *z)
{
    uint8_t b[6];
    if (!mpu_read(MPU_ACCEL_XOUT_H, b, 6))
        return 0;
    *x = raw_to_mg(b[0], b[1]);
    *y = raw_to_mg(b[2], b[3]);
    *z = raw_to_mg(b[4], b[5]);
    return 1;
}

/* ---- synthetic signal: device lying flat, slowly rocking (1 Hz on x, 0.5 Hz on y) ---- */
static const int16_t SINE64[64] PROGMEM = {
    0,    98,   195,  290,  383,  471,  556,  634,  707,  773,  831,  882,  924,  957,  981,  995,
    1000, 995,  981,  957,  924,  882,  831,  773,  707,  634,  556,  471,  383,  290,  195,  98,
    0,    -98,  -195, -290, -383, -471, -556, -634, -707, -773, -831, -882, -924, -957, -981, -995,
    -1000, -995, -981, -957, -924, -882, -831, -773, -707, -634, -556, -471, -383, -290, -195, -98};

static int16_t sine_mg(uint32_t seq, uint16_t period_samples, int16_t amp_permille)
{
    uint8_t i = (uint8_t)(((seq % period_samples) * 64UL) / period_samples);
    return (int16_t)(((int32_t)(int16_t)pgm_read_word(&SINE64[i]) * amp_permille) / 1000);
}

static void synthetic_mg(uint32_t seq, int16_t *x, int16_t *y, int16_t *z)
{
    *x = sine_mg(seq, HAR_RATE_HZ, 400);
    *y = sine_mg(seq, 2 * HAR_RATE_HZ, 150);
    *z = (int16_t)(1000 + sine_mg(seq, HAR_RATE_HZ, 50));
}

/* ---- Timer1: CTC on OCR1A at HAR_RATE_HZ; the ISR only counts ---- */
#if F_CPU / 8UL / HAR_RATE_HZ <= 65536UL
#define T1_PRESCALE_BITS _BV(CS11) /* /8 */
#define T1_TOP (F_CPU / 8UL / HAR_RATE_HZ - 1UL)
#else
#define T1_PRESCALE_BITS (_BV(CS11) | _BV(CS10)) /* /64 */
#define T1_TOP (F_CPU / 64UL / HAR_RATE_HZ - 1UL)
#endif

static volatile uint32_t g_ticks;

ISR(TIMER1_COMPA_vect)
{
    g_ticks++;
}

static void timer1_init(void)
{
    TCCR1A = 0;
    TCCR1B = _BV(WGM12) | T1_PRESCALE_BITS; /* CTC, TOP = OCR1A */
    OCR1A = (uint16_t)T1_TOP;
    TCNT1 = 0;
    TIMSK1 = _BV(OCIE1A);
}

/* Sleeps (idle: timers and UART keep running) until the tick counter passes `after`. */
static uint32_t wait_tick(uint32_t after)
{
    set_sleep_mode(SLEEP_MODE_IDLE);
    for (;;) {
        cli();
        uint32_t t = g_ticks;
        if (t != after) {
            sei();
            return t;
        }
        sleep_enable();
        sei(); /* the instruction after sei runs before any interrupt: no lost wake-up */
        sleep_cpu();
        sleep_disable();
    }
}

static void send_header(const char *dev)
{
    char line[HAR_MAX_LINE + 1];
    uint8_t n = (uint8_t)har_encode_header(line, sizeof line, HAR_RATE_HZ, HAR_RANGE_G, dev);
    uart_write(line, n);
}

static void put_hex8(char *p, uint8_t v)
{
    static const char hx[] = "0123456789ABCDEF";
    p[0] = hx[v >> 4];
    p[1] = hx[v & 15];
}

int main(void)
{
    char line[HAR_SAMPLE_MAX];
    uint8_t who = 0;
    uint8_t sensor = 0;
    uint32_t seq = 0;          /* seq of the next sample = Timer1 tick number */
    uint32_t next_header = 0;  /* seq at which the next header is due */
    uint32_t next_err_log = 0; /* rate-limits "!i2c read failed" */
    const char *dev = HAR_DEVICE;

    uart_init();
    uart_puts_P(PSTR("!har_stream avr boot\n"));
    if (HAR_SYNTHETIC) {
        uart_puts_P(PSTR("!HAR_SYNTHETIC build, streaming synthetic signal\n"));
        dev = "uno-synthetic";
    } else if (!(sensor = mpu_init(&who))) {
        char msg[] = "!mpu6050 not found (who_am_i=0x00), streaming synthetic signal\n";
        put_hex8(msg + 31, who); /* the "00" after "0x" */
        uart_write(msg, (uint8_t)(sizeof msg - 1));
        dev = "uno-synthetic";
    }
    timer1_init();
    sei();

    for (;;) {
        uint32_t t = wait_tick(seq);
        if (t - seq > 1) /* fell behind: skip to the newest tick; the host sees a seq gap */
            seq = t - 1;
        int16_t x, y, z;
        if (sensor) {
            if (!mpu_read_mg(&x, &y, &z)) {
                if ((int32_t)(seq - next_err_log) >= 0) {
                    uart_puts_P(PSTR("!i2c read failed\n"));
                    next_err_log = seq + HAR_RATE_HZ;
                }
                seq++; /* no line for this tick: a gap on the host */
                continue;
            }
        } else {
            synthetic_mg(seq, &x, &y, &z);
        }
        if ((int32_t)(seq - next_header) >= 0) {
            send_header(dev);
            next_header = seq + (uint32_t)HAR_HEADER_PERIOD_S * HAR_RATE_HZ;
        }
        uart_write(line, (uint8_t)har_encode_sample(line, sizeof line, seq, x, y, z));
        seq++;
    }
}
