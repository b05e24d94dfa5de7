// Package snmp holds the SNMP node types: snmp-agent (the address,
// version and credentials of one agent, shared by snmp-in nodes), snmp-in
// (polls OIDs with GET, WALK or BULKWALK and emits one object per poll)
// and snmp-trap-in (receives v1 and v2c traps and informs). The protocol
// work is done by github.com/gosnmp/gosnmp.
package snmp
