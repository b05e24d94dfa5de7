package all

import (
	_ "github.com/tbflow/tbflow/nodes/snmp" // snmp-agent, snmp-in, snmp-trap-in
)
