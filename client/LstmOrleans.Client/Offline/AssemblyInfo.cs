using System.Runtime.CompilerServices;

// The command tree is invoked in-process by the client tests.
[assembly: InternalsVisibleTo("LstmOrleans.Client.Tests")]
