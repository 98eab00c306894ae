/*
 * har_stream: streams an MPU-6050 accelerometer in har wire protocol v1 (firmware_bridge/PROTOCOL.md).
 *
 * Board:  Arduino Uno or Nano (ATmega328P, 16 MHz).
 * Sensor: MPU-6050 on a GY-521 breakout, I2C address 0x68.
 * Wiring: GY-521 VCC -> 5V (the breakout has a 3.3 V regulator; use 3.3V on a bare module)
 *         GY-521 GND -> GND
 *         GY-521 SDA -> A4 (SDA)
 *         GY-521 SCL -> A5 (SCL)
 *         GY-521 AD0 -> GND (address 0x68; AD0 high would be 0x69)
 *
 * Output: 115200 baud 8N1. "!" log lines at boot, a header line at boot and every 2 s, then one
 * sample line per Timer1 compare-match tick (50 Hz by default): seq,x,y,z in milli-g (+-4 g range).
 * If the sensor does not answer WHO_AM_I, a synthetic signal is streamed (dev=uno-synthetic) so
 * the host side can still be tested.
 *
 * The protocol encoder lives in src/har_protocol.c, a byte-identical copy of
 * ../har_protocol.c (the bare-metal build in ../avr uses the same file; `make -C ../avr sync-sketch`
 * refreshes the copy and tests/test_firmware.py checks they are identical).
 * Timer1 is used for sampling: do not combine with libraries that need it (Servo, TimerOne).
 */
#include <Wire.h>

#include "src/har_protocol.h"

static const uint16_t RATE_HZ = 50;           /* 1..1000; see PROTOCOL.md for the baud rate needed */
static const uint8_t RANGE_G = 4;             /* +-4 g: AFS_SEL = 1, 8192 LSB/g */
static const uint8_t HEADER_PERIOD_S = 2;     /* the protocol requires <= 5 s */
static const unsigned long BAUD = 115200;
static const uint8_t MPU_ADDR = 0x68;

static volatile uint32_t g_ticks = 0;
static bool g_sensor = false;
static const char *g_dev = "uno-mpu6050";
static uint32_t g_seq = 0;          /* seq of the next sample = Timer1 tick number */
static uint32_t g_next_header = 0;  /* seq at which the next header is due */
static uint32_t g_next_err_log = 0; /* rate-limits "!i2c read failed" */

ISR(TIMER1_COMPA_vect)
{
    g_ticks++;
}

static void timer1_start(uint16_t rate_hz)
{
    noInterrupts();
    TCCR1A = 0;
    TCNT1 = 0;
    if (F_CPU / 8UL / rate_hz <= 65536UL) {
        OCR1A = (uint16_t)(F_CPU / 8UL / rate_hz - 1UL);
        TCCR1B = _BV(WGM12) | _BV(CS11); /* CTC, clk/8 */
    } else {
        OCR1A = (uint16_t)(F_CPU / 64UL / rate_hz - 1UL);
        TCCR1B = _BV(WGM12) | _BV(CS11) | _BV(CS10); /* CTC, clk/64 */
    }
    TIMSK1 = _BV(OCIE1A);
    interrupts();
}

static bool mpu_write(uint8_t reg, uint8_t val)
{
    Wire.beginTransmission(MPU_ADDR);
    Wire.write(reg);
    Wire.write(val);
    return Wire.endTransmission() == 0;
}

static bool mpu_read(uint8_t reg, uint8_t *dst, uint8_t n)
{
    Wire.beginTransmission(MPU_ADDR);
    Wire.write(reg);
    if (Wire.endTransmission(false) != 0)
        return false;
    if (Wire.requestFrom(MPU_ADDR, n) != n)
        return false;
    for (uint8_t i = 0; i < n; i++)
        dst[i] = (uint8_t)Wire.read();
    return true;
}

static bool mpu_init(uint8_t *who)
{
    Wire.begin();
    Wire.setClock(400000);
#if defined(WIRE_HAS_TIMEOUT)
    Wire.setWireTimeout(3000, true); /* us; a stuck bus must not hang the sampler */
#endif
    *who = 0;
    if (!mpu_read(0x75, who, 1)) /* WHO_AM_I */
        return false;
    /* 0x68 MPU-6050; 0x70/0x71/0x73 MPU-6500/9250/9255 and 0x72/0x98 clones share these registers */
    if (*who != 0x68 && *who != 0x70 && *who != 0x71 && *who != 0x72 && *who != 0x73 && *who != 0x98)
        return false;
    return mpu_write(0x6B, 0x01)      /* PWR_MGMT_1: wake, clock = gyro X PLL */
           && mpu_write(0x1A, 0x03)   /* CONFIG: DLPF ~44 Hz accel bandwidth */
           && mpu_write(0x19, 0x00)   /* SMPLRT_DIV: registers refresh at 1 kHz */
           && mpu_write(0x1C, 0x08);  /* ACCEL_CONFIG: AFS_SEL = 1, +-4 g */
}

/* raw counts at +-4 g (8192 LSB/g) -> milli-g, rounded: raw * 1000 / 8192 = raw * 125 / 1024 */
static int16_t raw_to_mg(uint8_t hi, uint8_t lo)
{
    int16_t raw = (int16_t)(((uint16_t)hi << 8) | lo);
    return (int16_t)(((int32_t)raw * 125 + 512) >> 10);
}

static bool mpu_read_mg(int16_t *x, int16_t *y, int16_t *z)
{
    uint8_t b[6];
    if (!mpu_read(0x3B, b, 6)) /* ACCEL_XOUT_H .. ACCEL_ZOUT_L */
        return false;
    *x = raw_to_mg(b[0], b[1]);
    *y = raw_to_mg(b[2], b[3]);
    *z = raw_to_mg(b[4], b[5]);
    return true;
}

/* Synthetic signal (no sensor): lying flat, rocking at 1 Hz on x and 0.5 Hz on y. */
static int16_t sine_mg(uint32_t seq, uint16_t period, int16_t amp)
{
    float ph = (float)(seq % period) / (float)period;
    return (int16_t)(amp * sin(2.0f * (float)PI * ph));
}

static void send_header()
{
    char line[HAR_MAX_LINE + 1];
    size_t n = har_encode_header(line, sizeof line, RATE_HZ, RANGE_G, g_dev);
    Serial.write((const uint8_t *)line, n);
}

void setup()
{
    Serial.begin(BAUD); /* 8N1 */
    Serial.print(F("!har_stream arduino boot\n"));
    uint8_t who = 0;
    g_sensor = mpu_init(&who);
    if (!g_sensor) {
        Serial.print(F("!mpu6050 not found (who_am_i=0x"));
        Serial.print(who >> 4, HEX);
        Serial.print(who & 15, HEX);
        Serial.print(F("), streaming synthetic signal\n"));
        g_dev = "uno-synthetic";
    }
    timer1_start(RATE_HZ);
}

void loop()
{
    noInterrupts();
    uint32_t t = g_ticks;
    interrupts();
    if (t == g_seq)
        return; /* next tick not reached yet */
    if (t - g_seq > 1) /* fell behind: skip to the newest tick; the host sees a seq gap */
        g_seq = t - 1;

    int16_t x, y, z;
    if (g_sensor) {
        if (!mpu_read_mg(&x, &y, &z)) {
            if ((int32_t)(g_seq - g_next_err_log) >= 0) {
                Serial.print(F("!i2c read failed\n"));
                g_next_err_log = g_seq + RATE_HZ;
            }
            g_seq++; /* no line for this tick: a gap on the host */
            return;
        }
    } else {
        x = sine_mg(g_seq, RATE_HZ, 400);
        y = sine_mg(g_seq, 2 * RATE_HZ, 150);
        z = (int16_t)(1000 + sine_mg(g_seq, RATE_HZ, 50));
    }
    if ((int32_t)(g_seq - g_next_header) >= 0) {
        send_header();
        g_next_header = g_seq + (uint32_t)HEADER_PERIOD_S * RATE_HZ;
    }
    char line[HAR_SAMPLE_MAX];
    size_t n = har_encode_sample(line, sizeof line, g_seq, x, y, z);
    Serial.write((const uint8_t *)line, n);
    g_seq++;
}
