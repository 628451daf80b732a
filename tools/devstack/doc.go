// Package devstack is part of Brook; see the README.
package devstack
