// Package faults is tbflow's fault suite: tests named TestFault… that break
// what tbflow depends on while it works — the broker killed with SIGKILL
// and restarted, ThingsBoard going away and coming back, tbflow itself
// killed with SIGKILL during an outage, a link that stops carrying traffic
// for 30 s, a Modbus unit that stops answering, a server that answers with
// malformed JSON — and count what happened to numbered messages: sent,
// acknowledged, delivered, duplicated and lost (acknowledged but never
// delivered, which fails the test).
//
// Run it with `make faults`. Each test prints its row of the result table
// and appends a JSON line to artifacts/results.jsonl (TBFLOW_ARTIFACTS
// overrides the directory). docs/faults.md describes every fault, the exact
// meaning of each column, and the figures measured.
//
// The package itself holds what the tests share: Proxy, a TCP proxy that
// stalls links and reports the MQTT packets it forwards, and Result, a row
// of the table.
package faults
