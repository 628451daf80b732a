// Package bookshelflastread is part of Brook; see the README.
package bookshelflastread
