// Package kafkapush is part of Brook; see the README.
package kafkapush
