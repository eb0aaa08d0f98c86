from roadnet.cli import main

main()
