// Package gateway is part of Brook; see the README.
package gateway
