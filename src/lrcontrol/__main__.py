from lrcontrol.cli import main

main()
