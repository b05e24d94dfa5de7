package thingsboard

import "github.com/tbflow/tbflow/tb"

// For the external tests.
const MaxPendingBytes = maxPendingBytes

func RecordCost(values map[string]any) int64 { return recordCost(tb.Telemetry{Values: values}) }
