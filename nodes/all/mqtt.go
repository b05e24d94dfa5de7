package all

import (
	_ "github.com/tbflow/tbflow/nodes/mqtt" // mqtt-broker, mqtt-in, mqtt-out
)
