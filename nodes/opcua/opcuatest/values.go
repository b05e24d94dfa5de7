package opcuatest

// Item is a variable of the test server and the value tbflow reads from
// it, as JSON.
type Item struct {
	Key, NodeID, JSON string
}

// Items are the test server's fixed variables: every scalar type and some
// arrays, with the values tbflow must read (written as JSON).
var Items = []Item{
	{"boolean", "ns=2;s=Boolean", `true`},
	{"sbyte", "ns=2;s=SByte", `-8`},
	{"byte", "ns=2;s=Byte", `200`},
	{"int16", "ns=2;s=Int16", `-1234`},
	{"uint16", "ns=2;s=UInt16", `54321`},
	{"int32", "ns=2;s=Int32", `-123456`},
	{"uint32", "ns=2;s=UInt32", `3000000000`},
	{"int64", "ns=2;s=Int64", `-2`},
	{"uint64", "ns=2;s=UInt64", `1234567890`},
	{"float", "ns=2;s=Float", `1.5`},
	{"double", "ns=2;s=Double", `3.14159`},
	{"string", "ns=2;s=String", `"hello"`},
	{"datetime", "ns=2;s=DateTime", `"2024-01-02T03:04:05Z"`},
	{"bytestring", "ns=2;s=ByteString", `"dGJmbG93"`},
	{"guid", "ns=2;s=Guid", `"72962B91-FA75-4AE6-8D28-B404DC7DAF63"`},
	{"text", "nsu=urn:tbflow:test;s=LocalizedText", `"on"`},
	{"bools", "ns=2;s=BooleanArray", `[true,false,true]`},
	{"ints", "ns=2;s=Int32Array", `[1,-2,3]`},
	{"doubles", "ns=2;s=DoubleArray", `[1.5,2.5,-3.25]`},
	{"strings", "ns=2;s=StringArray", `["a","b"]`},
}

// Rows returns Items as the rows of an items table, plus the counter.
func Rows() []any {
	rows := make([]any, 0, len(Items)+1)
	for _, it := range Items {
		rows = append(rows, map[string]any{"key": it.Key, "nodeId": it.NodeID})
	}
	return append(rows, map[string]any{"key": "counter", "nodeId": "ns=2;s=Counter"})
}
