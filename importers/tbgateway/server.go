package tbgateway

// server converts the slave section (the Gateway as a Modbus server).
func (c *converter) server(tab, gw string, s map[string]any) {
	_ = tab
	_ = gw
	c.note("slave section (the Gateway serving registers as a Modbus server) is not converted")
}
