// Package compose is part of Brook; see the README.
package compose
