package flows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
	_ "github.com/tbflow/tbflow/nodes/all" // every node type
)

// TestExampleFlowsValidate validates every example flow against every
// registered node type.
func TestExampleFlowsValidate(t *testing.T) {
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, file := range files {
		if strings.HasSuffix(file, "_cred.json") {
			continue // a credentials file, not a flow
		}
		n++
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := engine.ParseFlow(data)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			// ${ENV} references count as set: examples name variables the
			// user provides at run time.
			ps := engine.DefaultRegistry().Validate(f, func(string) (string, bool) { return "example", true })
			for _, p := range ps {
				t.Errorf("%s: %s", file, p)
			}
		})
	}
	if n == 0 {
		t.Fatal("no example flows")
	}
}
