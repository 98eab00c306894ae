/* Minimal stand-in for the Arduino Wire library (declarations only; see Arduino.h here). */
#ifndef HAR_CI_WIRE_STUB_H
#define HAR_CI_WIRE_STUB_H
#include <stdint.h>
#include <stddef.h>

#define WIRE_HAS_TIMEOUT 1

class TwoWire {
  public:
    void begin(void);
    void setClock(uint32_t hz);
    void setWireTimeout(uint32_t us, bool reset_on_timeout);
    void beginTransmission(uint8_t addr);
    size_t write(uint8_t b);
    uint8_t endTransmission(bool stop = true);
    uint8_t requestFrom(uint8_t addr, uint8_t n);
    int read(void);
};
extern TwoWire Wire;
#endif
