package all

import (
	_ "github.com/tbflow/tbflow/nodes/opcua" // opcua-connection, opcua-in, opcua-write
)
