// Package hostile holds tbflow's hostile-input suite: a corpus of inputs
// an attacker or a broken peer could send (flow documents, expressions,
// WebSocket frames, MQTT packets to tbsim, RPC bodies, Modbus replies),
// each run against the real in-process component, and a [Tally] of what
// happened to each: accepted, refused with a clear error, crashed, hung or
// leaked (a secret in an answer, goroutines or memory left behind).
//
// `make hostile` runs the suite verbosely and prints the tally per kind of
// input; it also runs with `go test ./...`, where any crash, hang or leak
// fails it.
package hostile
