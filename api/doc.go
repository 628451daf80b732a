// Package api is part of Brook; see the README.
package api
