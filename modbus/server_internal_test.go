package modbus

import "testing"

// FuzzServerPDU: any request PDU gets an answer or an exception, never a
// panic, and an answer never exceeds a Modbus PDU.
func FuzzServerPDU(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 2})
	f.Add([]byte{16, 0, 1, 0, 2, 4, 0, 1, 0, 2})
	f.Add([]byte{15, 0, 0, 0, 9, 2, 0xFF, 1})
	f.Add([]byte{5, 0, 0, 0xFF, 0})
	s, err := NewServer(ServerConfig{URL: "tcp://127.0.0.1:0", Registers: []Register{
		{Key: "h", Function: Holding, Address: 0, Type: Uint32},
		{Key: "c", Function: Coil, Address: 0, Type: Bits, Length: 16},
		{Key: "i", Function: Input, Address: 0},
		{Key: "d", Function: Discrete, Address: 0},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > 253 {
			return
		}
		if resp := s.handlePDU(1, p); len(resp) > 253 {
			t.Fatalf("answer of %d bytes", len(resp))
		}
	})
}
