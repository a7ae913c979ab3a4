"""The command line: option declarations, one thin function per command, what is printed."""
