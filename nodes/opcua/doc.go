// Package opcua holds the OPC UA node types: opcua-connection (a client
// session to one server, shared by the other nodes), opcua-in (a
// subscription with monitored items, or polling reads, emitting one object
// per update), opcua-write (writes values typed by each node's data type)
// and the "browse" action the editor uses to pick nodes from the server's
// address space. The protocol work is done by github.com/gopcua/opcua.
package opcua
