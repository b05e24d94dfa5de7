package modbus

import (
	"errors"
	"fmt"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

// registerRow is one row of a register map table.
type registerRow struct {
	Key      string  `json:"key"`
	Function string  `json:"function"`
	Address  int     `json:"address"`
	Type     string  `json:"type"`
	Order    string  `json:"order"`
	Length   int     `json:"length"`
	Bit      int     `json:"bit"`
	Scale    float64 `json:"scale"`
	Offset   float64 `json:"offset"`
	Labels   string  `json:"labels"`
}

func enumOf[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// registersField is the register map table shared by modbus-in and
// modbus-write.
func registersField(help string, def []any) engine.Field {
	return engine.Field{
		Name: "registers", Kind: engine.KindTable, Min: engine.Float(1), Help: help, Default: def,
		Fields: []engine.Field{
			{Name: "key", Kind: engine.KindString, Required: true, Help: "Name of the value in the payload (and of the key to write).", Example: "voltage"},
			{Name: "function", Kind: engine.KindEnum, Default: "holding", Enum: enumOf(modbus.Functions), Help: "Modbus table: coil (FC 1/5), discrete input (FC 2), holding register (FC 3/6/16) or input register (FC 4)."},
			{Name: "address", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(65535), Help: "0-based protocol address (register 40001 in a datasheet is holding address 0)."},
			{Name: "type", Kind: engine.KindEnum, Default: "auto", Enum: append([]string{"auto"}, enumOf(modbus.Types)...),
				Help: "Data type; auto is bool for coils and discrete inputs, uint16 for registers. 32-bit types take 2 registers, 64-bit ones 4."},
			{Name: "order", Kind: engine.KindEnum, Default: "ABCD", Enum: enumOf(modbus.Orders), Help: "Byte/word order: ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA little-endian."},
			{Name: "length", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(123), Help: "Registers of a string (two characters each)."},
			{Name: "bit", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(15), Help: "Bit number of a bit type, 0 = least significant."},
			{Name: "scale", Kind: engine.KindNumber, Default: 1.0, Help: "The raw number is multiplied by scale…"},
			{Name: "offset", Kind: engine.KindNumber, Default: 0.0, Help: "…and offset is added (writes do the reverse)."},
			{Name: "labels", Kind: engine.KindString, Default: "", Help: "Optional names for raw values, VALUE=NAME separated by commas.", Example: "0=stopped,1=running,2=fault"},
		},
	}
}

// toRegisters converts and checks table rows, pointing errors at cells.
func toRegisters(rows []registerRow) ([]modbus.Register, error) {
	var errs []error
	regs := make([]modbus.Register, 0, len(rows))
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
			Scale: row.Scale, Offset: row.Offset, Labels: labels,
		}
		if r.Type == "auto" {
			r.Type = ""
		}
		if row.Address < 0 || row.Address > 65535 {
			errs = append(errs, &engine.FieldError{Field: field("address"), Message: "address must be 0–65535"})
			continue
		}
		if j, dup := seen[r.Key]; dup {
			errs = append(errs, &engine.FieldError{Field: field("key"), Message: fmt.Sprintf("key %q is also used by row %d", r.Key, j)})
			continue
		}
		seen[r.Key] = i
		if err := r.Check(); err != nil {
			errs = append(errs, &engine.FieldError{Field: field("type"), Message: err.Error()})
			continue
		}
		regs = append(regs, r)
	}
	return regs, errors.Join(errs...)
}
