package all

import (
	_ "github.com/tbflow/tbflow/nodes/function" // function (JavaScript, goja)
)
