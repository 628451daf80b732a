// Package kit is part of Brook; see the README.
package kit
