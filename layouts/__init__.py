"""Pure builders of the screen's components. Nothing here reads data; callbacks pass it in."""
