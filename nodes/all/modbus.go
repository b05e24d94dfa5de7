package all

import (
	_ "github.com/tbflow/tbflow/nodes/modbus" // modbus-connection, modbus-in, modbus-write
)
