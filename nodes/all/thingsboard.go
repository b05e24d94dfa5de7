package all

import (
	_ "github.com/tbflow/tbflow/nodes/thingsboard" // tb-connection, tb-telemetry-out, tb-attr-out, tb-attr-in, tb-rpc-in, tb-rpc-out, tb-rpc-call, gw-device
)
