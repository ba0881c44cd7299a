"""Reports, apart from training and free of torch: run files in (`runs`), tables built (`build`) and
rendered in Markdown, LaTeX, CSV or HTML (`tables`), the interactive HTML page (`pagedata`, `page`),
plots (`plots`), and the command (`command`)."""
