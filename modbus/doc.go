// Package modbus is tbflow's Modbus client side: register maps that say
// how a device's coils and registers become typed, scaled values (and back,
// for writes), and a Bus that polls many units over one physical link.
//
// A Register names one value: its function (coil, discrete input, holding
// or input register), address, data type, byte/word order (ABCD, CDAB, BADC,
// DCBA), scale, offset and optional enum labels. Decode and Encode convert
// between raw registers and values.
//
// A Bus owns one link (Modbus TCP, RTU over a serial line, or RTU over TCP)
// and serialises every request on it. Pollers registered with AddPoller
// share the link: the bus merges neighbouring registers of the same function
// into as few requests as the protocol allows (125 registers, 2000 bits,
// with a configurable gap), backs off a unit that stops answering without
// holding up the others, reopens the link after network errors, and reports
// latency and errors per unit. Writes go through the same bus, ahead of
// polls.
//
// The package knows nothing of the flow engine; nodes/modbus wraps it.
package modbus
