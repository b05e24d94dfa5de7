// Package conformance holds the test that compares tbflow with real
// Node-RED: Node-RED's own example flows (from the npm package
// @node-red/nodes that scripts/peers.sh installs under peers/nodered) run in
// Node-RED and, converted by the Node-RED import, in tbflow; what their debug
// nodes print must match. A second test loads a flow exported by tbflow
// into Node-RED and checks that only tbflow's own types are missing.
package conformance
