package snmp

// SetMaxWalk sets the bound of one walk and returns a function that
// restores it.
func SetMaxWalk(n int) func() {
	old := maxWalk
	maxWalk = n
	return func() { maxWalk = old }
}
