package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Result is one fault's outcome: one row of the table and one line of
// results.jsonl. The columns are defined in docs/faults.md.
type Result struct {
	Fault string `json:"fault"`
	Test  string `json:"test"`
	// Sent counts the messages the producer made (publishes, flow messages,
	// polls). Acknowledged counts those tbflow accepted as durable (see
	// docs/faults.md for each fault's precise rule). Delivered counts the
	// distinct messages the server (or the consumer) received, Duplicated
	// the extra copies, Lost the acknowledged messages never delivered.
	Sent         int `json:"sent"`
	Acknowledged int `json:"acknowledged"`
	Delivered    int `json:"delivered"`
	Duplicated   int `json:"duplicated"`
	Lost         int `json:"lost"`
	// DeadLettered counts the messages tbflow moved out of the outbox
	// because the server will never take them (refused payload or topic):
	// they are kept, reported, never silently lost.
	DeadLettered int `json:"dead_lettered"`
	// Recovery is the time from the end of the fault to the point the
	// fault's test defines (docs/faults.md); zero when not meaningful.
	Recovery time.Duration `json:"-"`
	// Extra holds fault-specific counters (broker_lost, false_acks,
	// failed_polls, detect_ms, ...).
	Extra map[string]int64 `json:"extra,omitempty"`
	Notes string           `json:"notes,omitempty"`
	Time  time.Time        `json:"time"`
}

// MarshalJSON adds recovery_ms (absent when not meaningful).
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	out := struct {
		plain
		RecoveryMS *int64 `json:"recovery_ms,omitempty"`
	}{plain: plain(r)}
	if r.Recovery > 0 {
		ms := r.Recovery.Milliseconds()
		out.RecoveryMS = &ms
	}
	return json.Marshal(out)
}

// TableHeader is the header of the result table (Markdown).
func TableHeader() string {
	return "| fault | sent | acknowledged | delivered | duplicated | dead-lettered | lost | recovery | notes |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---|"
}

// Row renders the result as a table row (Markdown).
func (r Result) Row() string {
	rec := "–"
	if r.Recovery > 0 {
		rec = fmt.Sprintf("%.2f s", r.Recovery.Seconds())
	}
	notes := r.Notes
	if len(r.Extra) > 0 {
		keys := make([]string, 0, len(r.Extra))
		for k := range r.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, r.Extra[k]))
		}
		if notes != "" {
			notes += "; "
		}
		notes += strings.Join(parts, " ")
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %s | %s |",
		r.Fault, r.Sent, r.Acknowledged, r.Delivered, r.Duplicated, r.DeadLettered, r.Lost, rec, notes)
}

// ArtifactsDir is where results.jsonl goes: $TBFLOW_ARTIFACTS, or
// "artifacts" beside the package (go test runs in the package directory).
func ArtifactsDir() string {
	if d := os.Getenv("TBFLOW_ARTIFACTS"); d != "" {
		return d
	}
	return "artifacts"
}

// AppendJSONL appends r as one JSON line to dir/results.jsonl.
func AppendJSONL(dir string, r Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "results.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
