// Package function provides the `function` node: JavaScript with Node-RED's
// function-node API, run by goja (github.com/dop251/goja). Each node keeps
// one goja runtime for its whole life, so a message costs a function call,
// not a new interpreter; every run of a script is bounded in time by the
// node's budget (goja's Interrupt), and the values a script hands back are
// copied out with depth and size limits.
package function
