// Package bookshelfcommands is part of Brook; see the README.
package bookshelfcommands
