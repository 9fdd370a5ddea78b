"""Personal recommendations: the viewer's tastes, the people they follow, and quality and popularity."""
