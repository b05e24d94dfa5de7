package all

import (
	_ "github.com/tbflow/tbflow/nodes/http" // http-in, http-request
)
