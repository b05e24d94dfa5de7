package tb

import "testing"

func TestRecordTs(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    int64
	}{
		{`{"ts": 1700000000000, "values": {"t": 1}}`, 1700000000000},
		{`[{"ts": 1700000002000, "values": {}}, {"ts": 1700000001000, "values": {}}]`, 1700000001000},
		{`{"Meter A": [{"ts": 1700000005000, "values": {}}], "Meter B": [{"ts": 1700000004000, "values": {}}]}`, 1700000004000},
		{`{"temperature": 21}`, 0},
		{`not json`, 0},
	} {
		if got := recordTs([]byte(c.payload)); got != c.want {
			t.Errorf("recordTs(%s) = %d, want %d", c.payload, got, c.want)
		}
	}
}
