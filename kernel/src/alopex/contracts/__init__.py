"""One abstract contract per subsystem; plugins implement them, the kernel calls them."""
