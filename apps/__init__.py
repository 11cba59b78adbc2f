"""The top floor of MAGWorld (``magworld.apps``): the commands that need the environments and the agents together;
nothing below imports it."""
