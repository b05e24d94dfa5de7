package opcua

// ToJSON is toJSON, for the tests.
var ToJSON = toJSON
