// Package flows holds the example flows, embedded in the binary (tbflow demo
// runs demo.json from here); its test validates every one of them.
package flows

import "embed"

// Files holds the example flows and their credentials files, so that the
// binary carries them: `tbflow demo` runs demo.json from here.
//
//go:embed *.json
var Files embed.FS

// Demo returns the demo flow and its credentials file (demo.json and
// demo_cred.json).
func Demo() (flow, creds []byte) {
	flow, err := Files.ReadFile("demo.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	creds, err = Files.ReadFile("demo_cred.json")
	if err != nil {
		panic(err)
	}
	return flow, creds
}
