// Package modbustest starts the real third-party Modbus peers the tests of
// the Modbus packages run against: Debian's pymodbus as a server over TCP,
// UDP, TLS, or RTU and ASCII frames on a socat pseudo-terminal pair (or
// over TCP), with register tables given by the test, an optional request
// size limit (a device that refuses bigger reads) and units that never
// answer; and mbpoll (libmodbus) as a second client for cross-checks.
// A missing peer fails the test under CI or TBFLOW_REQUIRE_PEERS=1 and
// skips it otherwise, naming the Debian package to install.
package modbustest
