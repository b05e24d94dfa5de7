// Package all imports every tbflow node package, so that a blank import of
// it registers every node type in the engine's default registry.
package all

import (
	_ "github.com/tbflow/tbflow/nodes/core" // inject, debug, transform, switch, delay, rate-limit, catch, status
)
