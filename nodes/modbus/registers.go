package modbus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

// registerRow is one row of a register map table of modbus-read and
// modbus-write.
type registerRow struct {
	Key      string  `json:"key"`
	Function string  `json:"function"`
	Address  int     `json:"address"`
	To       int     `json:"to"`
	Type     string  `json:"type"`
	Order    string  `json:"order"`
	Length   int     `json:"length"`
	Bit      int     `json:"bit"`
	Scale    float64 `json:"scale"`
	Divider  float64 `json:"divider"`
	Offset   float64 `json:"offset"`
	Round    int     `json:"round"`
	Labels   string  `json:"labels"`
}

func polledRows(rows []registerRow) []polledRow {
	out := make([]polledRow, len(rows))
	for i, r := range rows {
		out[i] = polledRow{Key: r.Key, Function: r.Function, Address: r.Address, To: r.To, Type: r.Type, Order: r.Order,
			Length: r.Length, Bit: r.Bit, Scale: r.Scale, Divider: r.Divider, Offset: r.Offset, Round: r.Round, Labels: r.Labels}
	}
	return out
}

// polledRow is one row of modbus-in's register map: a registerRow with
// where and when its value is sent.
type polledRow struct {
	Key          string          `json:"key"`
	Function     string          `json:"function"`
	Address      int             `json:"address"`
	To           int             `json:"to"`
	Type         string          `json:"type"`
	Order        string          `json:"order"`
	Length       int             `json:"length"`
	Bit          int             `json:"bit"`
	Scale        float64         `json:"scale"`
	Divider      float64         `json:"divider"`
	Offset       float64         `json:"offset"`
	Round        int             `json:"round"`
	Labels       string          `json:"labels"`
	Scope        string          `json:"scope"`
	Report       string          `json:"report"`
	Deadband     float64         `json:"deadband"`
	ReportPeriod engine.Duration `json:"reportPeriod"`
}

// rowDefaults are the connection's defaults for rows that say "default".
type rowDefaults struct {
	order  modbus.Order
	compat modbus.Convention
}

// rowMeta is what a poller needs of a row besides the register: where the
// value goes and when it is reported.
type rowMeta struct {
	scope    string // telemetry or attribute
	report   string // "", poll, change, period, change-or-period
	deadband float64
	period   time.Duration
}

func enumOf[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

var (
	bitTypes    = []any{"bit", "bits"}
	lengthTypes = []any{"string", "bytes", "bits"}
)

// registersField is the register map table shared by modbus-in,
// modbus-read and modbus-write; polled maps have the reporting columns.
func registersField(help string, def []any, polled bool) engine.Field {
	cols := []engine.Field{
		{Name: "key", Label: "Key", Kind: engine.KindString, Required: true,
			Help: "Name of the value in the payload (and of the key to write). With a range, {address} stands for each address.", Example: "voltage"},
		{Name: "function", Label: "Function", Kind: engine.KindEnum, Default: "holding", Enum: enumOf(modbus.Functions),
			Help: "Modbus table: coil (FC 1/5/15), discrete input (FC 2), holding register (FC 3/6/16) or input register (FC 4)."},
		{Name: "address", Label: "Address", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(65535),
			Help: "0-based protocol address (register 40001 in a datasheet is holding address 0)."},
		{Name: "to", Label: "Range to", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(65535), Advanced: true,
			Help: "Last address of a range: the row repeats for each value from address on (one per type size), each keyed by key with {address} replaced. 0: no range."},
		{Name: "type", Label: "Type", Kind: engine.KindEnum, Default: "auto", Enum: append([]string{"auto"}, enumOf(modbus.Types)...),
			Help: "Data type; auto is bool for coils and discrete inputs, uint16 for registers. 32-bit types take 2 registers, 64-bit ones 4; int8/uint8 are the low byte."},
		{Name: "order", Label: "Byte/word order", Kind: engine.KindEnum, Default: "default", Enum: append([]string{"default"}, enumOf(modbus.Orders)...),
			Help: "ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA little-endian; default takes the connection's."},
		{Name: "length", Label: "Length", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(2000),
			Help: "Registers of a string or bytes value (two bytes each); the number of bits of a bits value.", ShowIf: map[string][]any{"type": lengthTypes}},
		{Name: "bit", Label: "Bit", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(15),
			Help: "Bit number of a bit type, 0 = least significant.", ShowIf: map[string][]any{"type": bitTypes[:1]}},
		{Name: "scale", Label: "Scale", Kind: engine.KindNumber, Default: 1.0, Help: "The raw number is multiplied by scale (exact decimal arithmetic: 2301 × 0.1 is 230.1)…"},
		{Name: "divider", Label: "Divider", Kind: engine.KindNumber, Default: 1.0, Help: "…divided by divider…", Advanced: true},
		{Name: "offset", Label: "Offset", Kind: engine.KindNumber, Default: 0.0, Help: "…and offset is added (writes do the reverse)."},
		{Name: "round", Label: "Round", Kind: engine.KindInt, Default: -1, Min: engine.Float(-1), Max: engine.Float(15),
			Help: "Decimals to round the result to; -1 keeps it as it is.", Advanced: true},
		{Name: "labels", Label: "Labels", Kind: engine.KindString, Default: "", Help: "Optional names for raw values, VALUE=NAME separated by commas.", Example: "0=stopped,1=running,2=fault"},
	}
	if polled {
		cols = append(cols,
			engine.Field{Name: "scope", Label: "Send as", Kind: engine.KindEnum, Default: "telemetry", Enum: []string{"telemetry", "attribute"},
				Help: "Telemetry rows leave by the first output, attribute rows by the second: one poll can feed tb-telemetry-out and tb-attr-out."},
			engine.Field{Name: "report", Label: "Report", Kind: engine.KindEnum, Default: "default", Enum: []string{"default", "poll", "change", "period", "change-or-period"},
				Help: "When the value is sent: every poll, on change (beyond the deadband), every report period, or on change and at least every period; default follows the node's report-by-exception setting."},
			engine.Field{Name: "deadband", Label: "Deadband", Kind: engine.KindNumber, Default: 0.0, Min: engine.Float(0),
				Help: "A number counts as changed only when it moved more than this since it was last sent.", ShowIf: map[string][]any{"report": {"change", "change-or-period"}}},
			engine.Field{Name: "reportPeriod", Label: "Report period", Kind: engine.KindDuration, Default: "1m",
				Help: "How often the value is sent again even when unchanged.", ShowIf: map[string][]any{"report": {"period", "change-or-period"}}},
		)
	}
	return engine.Field{Name: "registers", Label: "Registers", Kind: engine.KindTable, Min: engine.Float(1), Help: help, Default: def, Fields: cols}
}

// toRegisters converts and checks table rows, pointing errors at cells,
// and expands address ranges.
func toRegisters(rows []polledRow, def rowDefaults) ([]modbus.Register, []rowMeta, error) {
	var errs []error
	regs := make([]modbus.Register, 0, len(rows))
	metas := make([]rowMeta, 0, len(rows))
	seen := map[string]int{}
	for i, row := range rows {
		field := func(col string) string { return fmt.Sprintf("registers[%d].%s", i, col) }
		labels, err := modbus.ParseLabels(row.Labels)
		if err != nil {
			errs = append(errs, &engine.FieldError{Field: field("labels"), Message: err.Error()})
		}
		r := modbus.Register{
			Key: row.Key, Function: modbus.Function(row.Function), Address: uint16(row.Address),
			Type: modbus.Type(row.Type), Order: modbus.Order(row.Order), Length: row.Length, Bit: row.Bit,
			Scale: row.Scale, Divider: row.Divider, Offset: row.Offset, Labels: labels, Compat: def.compat,
		}
		if row.Round >= 0 && row.Round <= 15 {
			n := row.Round
			r.Round = &n
		}
		if r.Type == "auto" {
			r.Type = ""
		}
		if r.Order == "default" || r.Order == "" {
			r.Order = def.order
		}
		if row.Address < 0 || row.Address > 65535 {
			errs = append(errs, &engine.FieldError{Field: field("address"), Message: "address must be 0–65535"})
			continue
		}
		if err := r.Check(); err != nil {
			errs = append(errs, &engine.FieldError{Field: field("type"), Message: err.Error()})
			if _, dup := seen[r.Key]; !dup {
				seen[r.Key] = i
			}
			continue
		}
		meta := rowMeta{scope: row.Scope, report: row.Report, deadband: row.Deadband, period: row.ReportPeriod.D()}
		if meta.report == "default" {
			meta.report = ""
		}
		expanded := []modbus.Register{r}
		if row.To > 0 {
			if row.To < row.Address {
				errs = append(errs, &engine.FieldError{Field: field("to"), Message: "the range ends before it starts"})
				continue
			}
			if !strings.Contains(r.Key, "{address}") {
				r.Key += "_{address}"
			}
			expanded = expanded[:0]
			for a := row.Address; a+r.Count()-1 <= row.To && len(expanded) < 10000; a += r.Count() {
				x := r
				x.Address = uint16(a)
				x.Key = strings.ReplaceAll(r.Key, "{address}", strconv.Itoa(a))
				expanded = append(expanded, x)
			}
		}
		for _, x := range expanded {
			if j, dup := seen[x.Key]; dup {
				errs = append(errs, &engine.FieldError{Field: field("key"), Message: fmt.Sprintf("key %q is also used by row %d", x.Key, j)})
				continue
			}
			seen[x.Key] = i
			regs = append(regs, x)
			metas = append(metas, meta)
		}
	}
	return regs, metas, errors.Join(errs...)
}
