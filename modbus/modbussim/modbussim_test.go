package modbussim_test

import (
	"testing"
	"time"

	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
)

func TestSignals(t *testing.T) {
	ramp := modbussim.Ramp(0, 10, 10*time.Second)
	if v := ramp(5*time.Second, nil).(float64); v != 5 {
		t.Errorf("ramp at half period = %v", v)
	}
	if v := ramp(12*time.Second, nil).(float64); v != 2 {
		t.Errorf("ramp wraps: %v", v)
	}
	if v := modbussim.Counter(100, 2)(3*time.Second, nil).(float64); v != 106 {
		t.Errorf("counter %v", v)
	}
	half := func() float64 { return 0.75 }
	if v := modbussim.Noise(50, 2)(0, half).(float64); v != 51 {
		t.Errorf("noise %v", v)
	}
	if v := modbussim.Sum(modbussim.Fixed(1.0), modbussim.Fixed(2.5))(0, half).(float64); v != 3.5 {
		t.Errorf("sum %v", v)
	}
}

func TestUnitTables(t *testing.T) {
	s := modbussim.New()
	u := s.Unit(7)
	r := modbus.Register{Key: "t", Function: modbus.Input, Address: 4, Type: modbus.Float32, Order: modbus.CDAB}
	if err := u.Set(r, 21.5); err != nil {
		t.Fatal(err)
	}
	if w := u.Words(modbus.Input, 4, 2); w[0] != 0x0000 || w[1] != 0x41AC {
		t.Errorf("float32 21.5 CDAB = %04X", w)
	}
	if v, _ := u.Get(r); v != 21.5 {
		t.Errorf("get %v", v)
	}
	if err := u.Script(modbus.Register{Key: "c", Function: modbus.Holding, Address: 0, Type: modbus.Uint32}, modbussim.Fixed(70000)); err != nil {
		t.Fatal(err)
	}
	if w := u.Words(modbus.Holding, 0, 2); w[0] != 1 || w[1] != 4464 {
		t.Errorf("scripted uint32 = %v", w)
	}
	if err := modbussim.EnergyMeter(s.Unit(1)); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != "" || s.Close() != nil {
		t.Error("a server that never listened")
	}
}
