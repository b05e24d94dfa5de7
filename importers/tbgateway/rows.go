package tbgateway

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/modbus"
)

var rowKnown = map[string]bool{
	"tag": true, "type": true, "functionCode": true, "objectsCount": true, "registersCount": true, "registerCount": true,
	"address": true, "divider": true, "multiplier": true, "round": true, "bit": true, "bitTargetType": true,
	"variants": true, "reportStrategy": true, "value": true,
}

// functionOf maps a Modbus function code to a register table.
func functionOf(fc int) (modbus.Function, bool) {
	switch fc {
	case 1, 5, 15:
		return modbus.Coil, true
	case 2:
		return modbus.Discrete, true
	case 3, 6, 16:
		return modbus.Holding, true
	case 4:
		return modbus.Input, true
	}
	return "", false
}

// typeOf maps the Gateway's type names.
func typeOf(t string, count int, f modbus.Function, hasBit bool) (modbus.Type, int, bool) {
	t = strings.ToLower(strings.TrimSpace(t))
	switch t {
	case "bits", "bit", "coil", "coils":
		switch {
		case hasBit:
			return modbus.Bit, count, true
		case f.IsBit() && count <= 1:
			return modbus.Bool, 0, true
		}
		return modbus.Bits, max(count, 1), true
	case "string":
		return modbus.String, max(count, 1), true
	case "bytes":
		return modbus.Bytes, max(count, 1), true
	case "8int":
		return modbus.Int8, 0, true
	case "8uint":
		return modbus.Uint8, 0, true
	case "16int":
		return modbus.Int16, 0, true
	case "16uint":
		return modbus.Uint16, 0, true
	case "16float":
		return modbus.Float16, 0, true
	case "32int":
		return modbus.Int32, 0, true
	case "32uint":
		return modbus.Uint32, 0, true
	case "32float":
		return modbus.Float32, 0, true
	case "64int":
		return modbus.Int64, 0, true
	case "64uint":
		return modbus.Uint64, 0, true
	case "64float":
		return modbus.Float64, 0, true
	case "int", "long", "integer", "uint", "float", "double":
		bits := 16 * max(count, 1)
		prefix := map[string]string{"int": "int", "long": "int", "integer": "int", "uint": "uint", "float": "float", "double": "float"}[t]
		typ := modbus.Type(prefix + strconv.Itoa(bits))
		for _, x := range modbus.Types {
			if x == typ {
				return typ, 0, true
			}
		}
	}
	return "", 0, false
}

// row converts one timeseries, attributes, attributeUpdates or rpc entry
// into a register row; ok is false (and the report says why) when it does
// not map.
func (c *converter) row(label string, e map[string]any, order modbus.Order, write bool) (map[string]any, bool) {
	if e == nil {
		c.note("%s: not an object", label)
		return nil, false
	}
	tag := str(e, "tag")
	if tag == "" {
		c.note("%s: no tag", label)
		return nil, false
	}
	label = fmt.Sprintf("%s %q", label, tag)
	for k := range e {
		if !rowKnown[k] {
			c.note("%s: option %q is not used", label, k)
		}
	}
	fc := int(num(e, "functionCode", 0))
	f, ok := functionOf(fc)
	if !ok {
		c.note("%s: function code %d is not supported", label, fc)
		return nil, false
	}
	if write && !f.Writable() {
		c.note("%s: function code %d cannot write", label, fc)
		return nil, false
	}
	count := int(num(e, "objectsCount", num(e, "registersCount", num(e, "registerCount", 1))))
	_, hasBit := e["bit"]
	typ, length, ok := typeOf(str(e, "type"), count, f, hasBit)
	if !ok {
		c.note("%s: type %q (objectsCount %d) is not supported", label, str(e, "type"), count)
		return nil, false
	}
	if f.IsBit() && typ != modbus.Bool && typ != modbus.Bits && typ != modbus.Bit {
		c.note("%s: type %q on a coil or discrete input: read as a bool", label, str(e, "type"))
		typ, length = modbus.Bool, 0
	}
	row := map[string]any{"key": tag, "function": string(f), "type": string(typ), "order": string(order)}
	if typ == modbus.Bool {
		row["type"] = "auto"
	}
	if length > 0 {
		row["length"] = float64(length)
	}
	if hasBit {
		row["bit"] = num(e, "bit", 0)
	}
	// Address: a number, or a range "first-last" whose keys name each
	// address.
	switch a := e["address"].(type) {
	case float64:
		row["address"] = a
	case string:
		first, last, isRange := strings.Cut(strings.TrimSpace(a), "-")
		lo, err1 := strconv.Atoi(strings.TrimSpace(first))
		if err1 != nil {
			c.note("%s: address %q is not a number or a range", label, a)
			return nil, false
		}
		row["address"] = float64(lo)
		if isRange {
			hi, err2 := strconv.Atoi(strings.TrimSpace(last))
			if err2 != nil || hi < lo {
				c.note("%s: address range %q is not valid", label, a)
				return nil, false
			}
			row["to"] = float64(hi)
		}
	default:
		c.note("%s: no address", label)
		return nil, false
	}
	// Key placeholders: ${address} becomes tbflow's {address} (${…} is
	// tbflow's environment-variable syntax); the others are known now.
	key := tag
	for name, v := range map[string]string{"unitId": strconv.Itoa(c.unit), "functionCode": strconv.Itoa(fc), "type": str(e, "type"), "objectsCount": strconv.Itoa(count)} {
		key = strings.ReplaceAll(key, "${"+name+"}", v)
	}
	key = strings.ReplaceAll(key, "${address}", "{address}")
	row["key"] = key
	if d := num(e, "divider", 0); d != 0 && !f.IsBit() {
		row["divider"] = d
		if _, both := e["multiplier"]; both {
			c.note("%s: divider and multiplier both set: the Gateway uses only the divider, and so does tbflow", label)
		}
	} else if m := num(e, "multiplier", 0); m != 0 && !f.IsBit() {
		row["scale"] = m
	}
	if r, ok := e["round"]; ok && r != nil {
		row["round"] = num(e, "round", 6)
	}
	if strings.EqualFold(str(e, "bitTargetType"), "int") {
		c.note("%s: bitTargetType int: tbflow sends the bits as true/false", label)
	}
	if v, ok := e["variants"].(map[string]any); ok && len(v) > 0 {
		var parts []string
		for k, name := range v {
			n, err := strconv.ParseInt(k, 10, 64)
			s, isStr := name.(string)
			if err != nil || !isStr {
				c.note("%s: variant %q is not an integer → name pair", label, k)
				continue
			}
			parts = append(parts, fmt.Sprintf("%d=%s", n, s))
		}
		sort.Strings(parts)
		row["labels"] = strings.Join(parts, ",")
	}
	if write && typ == modbus.Bits && !f.IsBit() {
		c.note("%s: writes of bits to a register use tbflow's bit order (bit 0 first)", label)
	}
	return row, true
}
