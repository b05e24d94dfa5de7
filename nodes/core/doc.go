// Package core holds tbflow's core node types: inject, debug, transform,
// switch, delay, rate-limit, catch and status. They register themselves in
// the engine's default registry when the package is imported (usually
// through nodes/all), together with import rules for the matching Node-RED
// core nodes.
package core
