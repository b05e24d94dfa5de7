package core

import (
	"testing"
	"time"
)

func mustCron(t *testing.T, s string) *cronSpec {
	t.Helper()
	c, err := parseCron(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCron(t *testing.T) {
	loc := time.UTC
	base := time.Date(2026, 3, 14, 10, 7, 30, 0, loc) // a Saturday
	cases := []struct {
		spec string
		want time.Time
	}{
		{"*/5 * * * *", time.Date(2026, 3, 14, 10, 10, 0, 0, loc)},
		{"0 8 * * 1-5", time.Date(2026, 3, 16, 8, 0, 0, 0, loc)},
		{"@daily", time.Date(2026, 3, 15, 0, 0, 0, 0, loc)},
		{"30 9 1 * *", time.Date(2026, 4, 1, 9, 30, 0, 0, loc)},
		{"0 0 * * 7", time.Date(2026, 3, 15, 0, 0, 0, 0, loc)},
		{"15,45 10 * * *", time.Date(2026, 3, 14, 10, 15, 0, 0, loc)},
		{"0 0 29 2 *", time.Date(2028, 2, 29, 0, 0, 0, 0, loc)},
	}
	for _, c := range cases {
		got := mustCron(t, c.spec).next(base)
		if !got.Equal(c.want) {
			t.Errorf("%q: next = %v, want %v", c.spec, got, c.want)
		}
	}
	for _, bad := range []string{"", "* * * *", "60 * * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"} {
		if _, err := parseCron(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
