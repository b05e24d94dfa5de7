package snmp

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// Value types a row can ask for.
var valueTypes = []string{"auto", "number", "string", "hex", "bool"}

// errNoValue marks a variable the agent has no value for.
type errNoValue struct{ typ gosnmp.Asn1BER }

func (e errNoValue) Error() string {
	switch e.typ {
	case gosnmp.NoSuchObject:
		return "no such object"
	case gosnmp.NoSuchInstance:
		return "no such instance"
	case gosnmp.EndOfMibView:
		return "end of MIB view"
	}
	return "no value"
}

// convert turns one variable into a JSON-friendly value. auto: INTEGER,
// Counter32, Gauge32, TimeTicks and Counter64 become numbers (a Counter64
// beyond 2^63 its decimal text), Opaque floats numbers, OCTET STRING text
// when it is printable UTF-8 and hex ("00:1a:2b") otherwise, OBJECT
// IDENTIFIER and IpAddress their dotted text. number parses text as a
// number; string forces text; hex forces hex; bool is true for a non-zero
// number or "true"/"on"/"up"/"1".
func convert(pdu gosnmp.SnmpPDU, typ string) (any, error) {
	switch pdu.Type {
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
		return nil, errNoValue{pdu.Type}
	case gosnmp.Null:
		return nil, nil
	}
	v := auto(pdu)
	switch typ {
	case "", "auto":
		return v, nil
	case "string":
		switch t := pdu.Value.(type) {
		case []byte:
			return string(t), nil
		}
		return fmt.Sprint(v), nil
	case "hex":
		switch t := pdu.Value.(type) {
		case []byte:
			return hexText(t), nil
		}
		if n, ok := v.(int64); ok {
			return strconv.FormatInt(n, 16), nil
		}
		return nil, fmt.Errorf("%s value %v has no hex form", pdu.Type, v)
	case "number":
		switch t := v.(type) {
		case int64, float64:
			return t, nil
		case string:
			s := strings.TrimSpace(t)
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n, nil
			}
			if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, nil
			}
			return nil, fmt.Errorf("%q is not a number", t)
		}
		return nil, fmt.Errorf("%s value %v is not a number", pdu.Type, v)
	case "bool":
		switch t := v.(type) {
		case int64:
			return t != 0, nil
		case float64:
			return t != 0, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(t)) {
			case "true", "on", "up", "yes", "1":
				return true, nil
			case "false", "off", "down", "no", "0":
				return false, nil
			}
		}
		return nil, fmt.Errorf("%s value %v is not a boolean", pdu.Type, v)
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

func auto(pdu gosnmp.SnmpPDU) any {
	switch t := pdu.Value.(type) {
	case []byte:
		if utf8.Valid(t) && printable(t) {
			return string(t)
		}
		return hexText(t)
	case string:
		return strings.TrimPrefix(t, ".")
	case float32:
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(t), 'g', -1, 32), 64)
		return finite(f)
	case float64:
		return finite(t)
	case bool:
		return t
	case nil:
		return nil
	}
	n := gosnmp.ToBigInt(pdu.Value)
	if n.IsInt64() {
		return n.Int64()
	}
	if n.Sign() > 0 && n.Cmp(new(big.Int).SetUint64(math.MaxUint64)) <= 0 {
		return n.String()
	}
	return fmt.Sprint(pdu.Value)
}

func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

func printable(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			return false
		}
	}
	return true
}

func hexText(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

// normOID checks a dotted numeric OID and returns it with a leading dot.
func normOID(s string) (string, error) {
	s = strings.TrimSpace(s)
	t := strings.TrimPrefix(s, ".")
	if t == "" {
		return "", fmt.Errorf("an OID is needed")
	}
	parts := strings.Split(t, ".")
	if len(parts) < 2 || len(parts) > 128 {
		return "", fmt.Errorf("%q is not a numeric OID such as 1.3.6.1.2.1.1.3.0", s)
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return "", fmt.Errorf("%q is not a numeric OID such as 1.3.6.1.2.1.1.3.0", s)
		}
	}
	return "." + t, nil
}
